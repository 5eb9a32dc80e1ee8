module farcall.test/gojson

go 1.19
