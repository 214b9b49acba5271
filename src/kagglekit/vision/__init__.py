"""Image classification on the same engine: Fashion-MNIST, HiRISE Mars landmarks, CIFAR-10."""
