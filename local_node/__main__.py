from local_node.cli import main

main()
