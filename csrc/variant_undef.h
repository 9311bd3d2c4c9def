/* Removes one SIMD variant's parameters (set in instantiate.h) before the next one. */
#undef V
#undef TARGET
#undef VBYTES
#undef MR
