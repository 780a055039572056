"""Test helpers for users' own test suites: nnviz as the oracle of a framework's model.

    from nnviz.testing import assert_matches_reference

    def test_my_guided_backprop():
        assert_matches_reference(my_torch_vgg, x, rule="guided", preset="torch-guided",
                                 target="conv5_3:12")

The assertion fails with the per-layer report of :func:`nnviz.methods.compare.compare`
(``equal`` and ``tie`` pass; ``rule mismatch`` and ``differs`` fail).
"""
from .methods.compare import compare

__all__ = ["assert_matches_reference"]


def assert_matches_reference(model, x=None, rule=None, *, target=None, preset=None, **options):
    """Compare ``model`` (a torch module, a Keras model, or a model file) with nnviz on the
    batch ``x`` under ``rule`` (see :func:`nnviz.methods.compare.compare` for ``target``,
    ``preset`` and the other options: ``weights``, ``net``, ``golden``, ``dtype``, ``rtol``,
    ``atol``); raise AssertionError with the per-layer report unless every layer is
    ``equal`` or ``tie``. Returns the report."""
    __tracebackhide__ = True
    report = compare(model, x, target, rule=rule, preset=preset, **options)
    if not report.ok:
        raise AssertionError(f"the model does not match nnviz's reference ({report.verdict}):\n{report.table()}")
    return report
