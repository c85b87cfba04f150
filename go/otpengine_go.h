/* C helpers shared by the preambles of this package's files (a static
 * function in a cgo preamble is seen by its own file only). */
#ifndef OTPENGINE_GO_H
#define OTPENGINE_GO_H

#include <stdlib.h>
#include "otpengine.h"

/* Each wrapper makes its call and copies the thread's last error, when there
 * is one, into a malloc'd string in the same C call (a goroutine may change OS
 * threads between two cgo calls): one rule for every call, whatever its
 * statuses. A success or a verdict leaves no message and costs no allocation;
 * Go frees every message it gets. */
static inline char *go_last_error(void) {
	size_t len = otp_last_error(NULL, 0);
	if (len == 0) return NULL; /* no message: the call succeeded or answered a verdict */
	char *msg = malloc(len + 1);
	if (msg != NULL) otp_last_error(msg, len + 1);
	return msg;
}

/* The message of item i of this thread's last batch, as go_last_error. */
static inline char *go_batch_error(size_t i) {
	size_t len = otp_batch_error(i, NULL, 0);
	if (len == 0) return NULL;
	char *msg = malloc(len + 1);
	if (msg != NULL) otp_batch_error(i, msg, len + 1);
	return msg;
}

#endif
