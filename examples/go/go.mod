module quickstart

go 1.22

require otpengine v0.0.0

replace otpengine => ../../go
