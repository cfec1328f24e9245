from .query_patches import PluginPackQueryPatchInputs, PluginRandomQueryPatches

__all__ = ['PluginRandomQueryPatches', 'PluginPackQueryPatchInputs']
