/* The activations, declared once. Each X(NAME, code, forward, derivative) row is expanded
   into the C enum (kernels.h) and into every elementwise switch (workers_elementwise.h):
   `forward` is the activation of a value z, `derivative` its slope. The codes are
   engine/ops.py's, the Python side's single table (a test holds the two equal).

   ENG_HIDDEN_OPS: hidden activations whose derivative is written with the output
   a = act(z) (DESIGN.md: derivatives come from the outputs), so a layer keeps only a.
   ENG_SLOPE_OPS: hidden activations whose output does not determine z (silu takes each
   value in (-0.28, 0) twice): the derivative is written with z, and the forward pass of
   a training step keeps it beside the output (the layer's slope buffer), which the
   backward pass then reads in the output's place.
   ENG_OUTPUT_ONLY_OPS: those that only an output layer takes, whose forward is written
   out where it is used (softmax acts on whole rows, exp caps its argument) and whose
   derivative comes with the loss's delta. */
#ifndef ENG_OPS_H
#define ENG_OPS_H

#define ENG_LEAKY_SLOPE 0.01

#define ENG_HIDDEN_OPS(X)                                                                  \
    X(IDENTITY, 0, (z), (REAL)1)                                                           \
    X(SIGMOID, 1, VFN(sigmoid)(z), (a) * ((REAL)1 - (a)))                                  \
    X(RELU, 2, (z) > 0 ? (z) : (REAL)0, (a) > 0 ? (REAL)1 : (REAL)0)                       \
    X(TANH, 3, TANH(z), (REAL)1 - (a) * (a))                                               \
    X(LEAKY_RELU, 6, (z) > 0 ? (z) : (REAL)ENG_LEAKY_SLOPE * (z),                          \
      (a) > 0 ? (REAL)1 : (REAL)ENG_LEAKY_SLOPE)

#define ENG_SLOPE_OPS(X)                                                                   \
    X(SILU, 7, (z) * VFN(sigmoid)(z),                                                      \
      VFN(sigmoid)(z) * ((REAL)1 + (z) * ((REAL)1 - VFN(sigmoid)(z))))

#define ENG_OUTPUT_ONLY_OPS(X)                                                             \
    X(SOFTMAX, 4, -, -)                                                                    \
    X(EXP, 5, -, -)

#endif
