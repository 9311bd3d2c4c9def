"""The textbook API: `reference` (the pure-NumPy NeuralNetMLP that course notebooks use)
and `dropin` (the same API computed by the engine's backends, exported as
`engine.NeuralNetMLP`)."""
