from national_hub.cli import main

main()
