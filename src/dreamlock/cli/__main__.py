from dreamlock.cli import main

main()
