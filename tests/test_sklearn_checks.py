"""scikit-learn's own estimator checks, every one, no expected failures (its MLPs pass all
of theirs: 67 for the classifier, 60 for the regressor, with max_iter=100 as its suite
sets)."""
import pytest

pytest.importorskip("sklearn", reason="scikit-learn is an optional extra")

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from engine.sklearn import MLPClassifier, MLPRegressor  # noqa: E402


@parametrize_with_checks([MLPClassifier(max_iter=100), MLPRegressor(max_iter=100)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)
