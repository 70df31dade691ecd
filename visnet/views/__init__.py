"""The views besides the deconvnet, one module each; ``VIEWS`` maps a method name to its class."""
