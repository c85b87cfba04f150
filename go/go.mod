module otpengine

go 1.22
