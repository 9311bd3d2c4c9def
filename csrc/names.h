/* The one naming scheme of the generic sources (cf. CPython's stringlib).

   FN(name)  -> name_f / name_d      per dtype: S is set by dtype_float.h / dtype_double.h
   VFN(name) -> name_f_avx2 ...      per dtype and SIMD variant: V is set by instantiate.h

   So `grep eng_bias_act` finds `FN(eng_bias_act)` in elementwise.h, and the workers of
   one variant all end in the same suffix. */
#ifndef ENGINE_NAMES_H
#define ENGINE_NAMES_H
#define ENG_GLUE_(a, b) a##_##b
#define ENG_GLUE(a, b) ENG_GLUE_(a, b)
#define FN(name) ENG_GLUE(name, S)
#define VFN(name) ENG_GLUE(FN(name), V)
#endif
