"""Plugins: manifest parsing, discovery, lazy loading and isolation, and the public `api` module.

Plugins import only `studio.plugins.api`. The rest of this package is the studio's side: the
composition root builds a `PluginManager` (studio.plugins.manager) at start from the manifests of
enabled plugins; no plugin code is imported by `import studio` nor at start (except a plugin's
optional register hook, or an entry point that is a manifest callable). docs/plugins.md explains
how to write one.
"""
