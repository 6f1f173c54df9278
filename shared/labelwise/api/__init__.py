"""HTTP API: request/response models (the contract), routes and error mapping."""
