"""The errors the public API raises beyond ValueError/TypeError for bad arguments."""


class ModelFileError(ValueError):
    """A model file that cannot be read as one: missing, truncated, altered, or holding
    what engine.MLP.save never writes. The message names the file and what is wrong."""


class TrainingDiverged(FloatingPointError):
    """fit stopped because a minibatch loss or the weights stopped being finite; the model
    keeps the weights of the last epoch that ended finite."""
