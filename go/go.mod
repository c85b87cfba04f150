module otpengine

go 1.21
