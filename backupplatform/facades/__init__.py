"""The five API surfaces (one package per seed document), over one domain model.

``base.py`` holds what they share: the ``Facade`` description (envelope, error body,
paginator, throttles), the view base classes and the exception handler.
"""
