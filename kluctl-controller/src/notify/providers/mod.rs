//! Provider destinations: the payload of each provider type and its delivery.
