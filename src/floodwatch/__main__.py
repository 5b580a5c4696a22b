from floodwatch.cli.main import main

main()
