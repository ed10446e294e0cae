//! Static files served by the edge.
