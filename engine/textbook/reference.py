"""Pure-NumPy textbook MLP: the public surface that course notebooks are written against.

One sigmoid hidden layer, a sigmoid output and the MSE loss, trained with plain
minibatch SGD. Everything is float64 NumPy, and a caller may update the public
attributes in place between calls (``model.weight_h -= lr * grad``).

The output gradient follows this API's own convention, ``2 * (a_out - onehot) / n``:
C times the gradient of the mean-over-classes MSE that `mse_loss` reports.
Code written against the API depends on that scale, so it is kept.
"""
from __future__ import annotations

import numpy as np

__all__ = ["sigmoid", "int_to_onehot", "NeuralNetMLP", "minibatch_generator", "mse_loss",
           "accuracy", "compute_mse_and_acc", "train"]


def sigmoid(z):
    """The logistic function 1 / (1 + exp(-z)), not clipped."""
    return 1.0 / (1.0 + np.exp(-z))


def int_to_onehot(y, num_labels):
    """A float64 (len(y), num_labels) matrix with a 1 in each row's label column."""
    y = np.asarray(y)
    onehot = np.zeros((y.shape[0], num_labels))
    onehot[np.arange(y.shape[0]), y] = 1.0
    return onehot


class NeuralNetMLP:
    """features -> sigmoid hidden layer -> sigmoid outputs."""

    def __init__(self, num_features, num_hidden, num_classes, random_seed=123):
        self.num_classes = num_classes
        rng = np.random.RandomState(random_seed)
        # the draw order (hidden weights first) fixes the initial values
        self.weight_h = rng.normal(loc=0.0, scale=0.1, size=(num_hidden, num_features))
        self.bias_h = np.zeros(num_hidden)
        self.weight_out = rng.normal(loc=0.0, scale=0.1, size=(num_classes, num_hidden))
        self.bias_out = np.zeros(num_classes)

    def forward(self, x):
        """(hidden activations, output activations) for the rows of x."""
        a_h = sigmoid(np.dot(x, self.weight_h.T) + self.bias_h)
        a_out = sigmoid(np.dot(a_h, self.weight_out.T) + self.bias_out)
        return a_h, a_out

    def backward(self, x, a_h, a_out, y):
        """Gradients (d_loss__dw_out, d_loss__db_out, d_loss__d_w_h, d_loss__d_b_h).

        `y` holds integer labels; the output gradient is 2 * (a_out - onehot) / n.
        """
        onehot = int_to_onehot(y, self.num_classes)
        delta_out = 2.0 * (a_out - onehot) / y.shape[0] * a_out * (1.0 - a_out)
        d_loss__dw_out = np.dot(delta_out.T, a_h)
        d_loss__db_out = np.sum(delta_out, axis=0)
        delta_h = np.dot(delta_out, self.weight_out) * a_h * (1.0 - a_h)
        d_loss__d_w_h = np.dot(delta_h.T, x)
        d_loss__d_b_h = np.sum(delta_h, axis=0)
        return d_loss__dw_out, d_loss__db_out, d_loss__d_w_h, d_loss__d_b_h


def minibatch_generator(X, y, minibatch_size):
    """Shuffled (X, y) minibatches using the global np.random; a last partial batch is dropped."""
    indices = np.arange(X.shape[0])
    np.random.shuffle(indices)
    for start in range(0, indices.shape[0] - minibatch_size + 1, minibatch_size):
        batch = indices[start:start + minibatch_size]
        yield X[batch], y[batch]


def mse_loss(targets, probas, num_labels=10):
    """Mean over samples and classes of (onehot(targets) - probas)**2."""
    return np.mean((int_to_onehot(targets, num_labels) - probas) ** 2)


def accuracy(targets, predicted_labels):
    """Fraction of predictions equal to the targets."""
    return np.mean(predicted_labels == targets)


def compute_mse_and_acc(nnet, X, y, num_labels=10, minibatch_size=100):
    """(MSE averaged over minibatches, accuracy as a fraction) over full minibatches of X."""
    mse, correct, seen, batches = 0.0, 0, 0, 0
    for features, targets in minibatch_generator(X, y, minibatch_size):
        _, probas = nnet.forward(features)
        mse += mse_loss(targets, probas, num_labels)
        correct += (np.argmax(probas, axis=1) == targets).sum()
        seen += targets.shape[0]
        batches += 1
    return mse / batches, correct / seen


def train(model, X_train, y_train, X_valid, y_valid, num_epochs, learning_rate=0.1,
          minibatch_size=100):
    """Plain SGD; returns (epoch_loss, epoch_train_acc, epoch_valid_acc), accuracies in percent."""
    epoch_loss, epoch_train_acc, epoch_valid_acc = [], [], []
    for e in range(num_epochs):
        for X_mini, y_mini in minibatch_generator(X_train, y_train, minibatch_size):
            a_h, a_out = model.forward(X_mini)
            d_w_out, d_b_out, d_w_h, d_b_h = model.backward(X_mini, a_h, a_out, y_mini)
            model.weight_h -= learning_rate * d_w_h
            model.bias_h -= learning_rate * d_b_h
            model.weight_out -= learning_rate * d_w_out
            model.bias_out -= learning_rate * d_b_out
        train_mse, train_acc = compute_mse_and_acc(model, X_train, y_train)
        _, valid_acc = compute_mse_and_acc(model, X_valid, y_valid)
        train_acc, valid_acc = train_acc * 100, valid_acc * 100
        epoch_train_acc.append(train_acc)
        epoch_valid_acc.append(valid_acc)
        epoch_loss.append(train_mse)
        print(f"Epoch: {e + 1:03d}/{num_epochs:03d} | Train MSE: {train_mse:.2f} "
              f"| Train Acc: {train_acc:.2f}% | Valid Acc: {valid_acc:.2f}%")
    return epoch_loss, epoch_train_acc, epoch_valid_acc
