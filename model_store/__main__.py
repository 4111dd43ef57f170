from model_store.cli import main

raise SystemExit(main())
