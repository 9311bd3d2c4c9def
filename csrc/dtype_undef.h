/* Removes what dtype_float.h / dtype_double.h defined, before the next dtype. */
#undef REAL
#undef S
#undef UINT
#undef MANT_BITS
#undef EXP_SHIFTER
#undef SHIFTER_BITS
#undef EXP_MAX
#undef EXP_MIN
#undef LN2_HI
#undef LN2_LO
#undef POLY_EXP
#undef LOG
#undef TANH
#undef SQRT
#undef FABS
#undef EPS
#undef TINY
