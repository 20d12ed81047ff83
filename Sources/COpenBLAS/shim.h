#ifndef IJEPA_COPENBLAS_SHIM_H
#define IJEPA_COPENBLAS_SHIM_H
#include <cblas.h>
/* Declared by OpenBLAS; repeated here so older cblas.h variants still expose them. */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
#endif
