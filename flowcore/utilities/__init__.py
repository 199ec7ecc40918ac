"""Process-wide helpers: configuration, context, logging, collections, edges, tasks."""
