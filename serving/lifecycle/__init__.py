"""Models on disk to servables in memory: version directories, config files, the manager, the SavedModel loader."""
