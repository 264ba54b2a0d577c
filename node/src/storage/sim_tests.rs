//! Storage on a simulated disk: power cuts at any point.
