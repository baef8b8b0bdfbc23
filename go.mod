module github.com/whiskserver/whisk

go 1.26.8

require golang.org/x/sys v0.49.0

require (
	github.com/fsnotify/fsnotify v1.10.1 // indirect
	github.com/pelletier/go-toml/v2 v2.4.3 // indirect
)
