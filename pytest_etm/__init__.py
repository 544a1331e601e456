"""pytest-etm: test .etm bundles with pytest (``pytest --etm model.etm``)."""
