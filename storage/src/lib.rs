//! quiver-storage: the durable layer (write-ahead log, checksummed files, manifest).
