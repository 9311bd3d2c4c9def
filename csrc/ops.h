/* The activations, declared once. Each X(NAME, code, forward, derivative) row is expanded
   into the C enum (kernels.h) and into every elementwise switch (workers_elementwise.h):
   `forward` is the activation of a value z, `derivative` its slope written with the
   output a = act(z) (DESIGN.md: derivatives come from the outputs). The codes are
   engine/ops.py's, the Python side's single table (a test holds the two equal).

   ENG_HIDDEN_OPS: the hidden layers' activations; ENG_OUTPUT_ONLY_OPS: those that only an
   output layer takes, whose forward is written out where it is used (softmax acts on
   whole rows, exp caps its argument) and whose derivative comes with the loss's delta. */
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

#define ENG_OUTPUT_ONLY_OPS(X)                                                             \
    X(SOFTMAX, 4, -, -)                                                                    \
    X(EXP, 5, -, -)

#endif
