/* fuzz_error_xml.c - azure_parse_error_body() on arbitrary response bodies,
 * into roomy and into tiny buffers.
 *
 * Checks: Code and Message are NUL-terminated within their buffers, and the
 * Message is one line.
 */
#include "config.h"

#include <stdbool.h>

#include "azure_xml.h"
#include "fuzz.h"

static void parse_into(const uint8_t *data, size_t size, size_t code_size,
		       size_t message_size)
{
	/* Exactly sized heap buffers: ASan sees a write one past the end. */
	char *code = malloc(code_size), *message = malloc(message_size);
	bool ok;

	if (code == NULL || message == NULL)
		abort();
	memset(code, 'x', code_size);
	memset(message, 'x', message_size);
	ok = azure_parse_error_body((const char *)data, size, code, code_size, message,
				    message_size);
	FUZZ_CHECK(memchr(code, '\0', code_size) != NULL, "code not terminated");
	FUZZ_CHECK(memchr(message, '\0', message_size) != NULL, "message not terminated");
	FUZZ_CHECK(strpbrk(message, "\r\n") == NULL, "message has a line break");
	if (!ok)
		FUZZ_CHECK(code[0] == '\0' && message[0] == '\0', "not an error, yet text");
	free(code);
	free(message);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 256 * 1024)
		return 0;
	parse_into(data, size, 64, 512);
	parse_into(data, size, 1, 1);
	parse_into(data, size, 3, 7);
	return 0;
}
