from labelwise.cli.main import main

raise SystemExit(main())
