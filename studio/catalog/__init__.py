"""Model cards (assets/models.toml, user additions, plugins), the on-disk store, integrity checks."""
from studio.catalog.cards import Catalog, ModelCard, load_catalog

__all__ = ["Catalog", "ModelCard", "load_catalog"]
