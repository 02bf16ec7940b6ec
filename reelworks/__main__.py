from reelworks.cli import main

main()
