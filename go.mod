module github.com/whiskserver/whisk

go 1.26.8
