"""`python -m lenet_keras ...`: the same program as the `lenet-keras` command."""

from lenet_keras.cli import main

main()
