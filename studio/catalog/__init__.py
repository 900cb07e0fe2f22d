"""Model cards (assets/models.toml, user additions, plugins) and the on-disk model store."""
from studio.catalog.cards import Catalog, ModelCard

__all__ = ["Catalog", "ModelCard"]
