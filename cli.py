"""`python cli.py ...` in a checkout: the same program as the installed `lenet-keras`."""

from lenet_keras.cli import main

if __name__ == "__main__":
    main()
