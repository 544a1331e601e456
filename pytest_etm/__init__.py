"""pytest-etm: test .etm bundles with pytest (``pytest --etm model.etm``).

The plugin is ``pytest_etm.plugin``. The types its fixtures hand a test live
in ``etm_lint.runtime``: ``etm_model`` is a ``BundleModel``, and its
``generate`` returns a ``Generation``. This package imports nothing itself:
every pytest run in an environment that has it installed loads it.
"""
