/* removes one instance's parameters of bf16_amx_body.h */
#undef AMX_TARGET
#undef AMX_NAME
#undef TILE_START
#undef TILE_END
#undef TILE_ZERO
#undef TILE_LOAD
#undef TILE_STORE
#undef TILE_DP
