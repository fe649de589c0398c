/* azure_xml.c - parse Azure's Error documents and List Blobs pages.
 *
 * Parsing is strict about shape (a listing without EnumerationResults or
 * with a non-numeric Content-Length is an error, not an empty listing:
 * retention must never act on a misread listing) and lenient about
 * elements it does not know.  XML_PARSE_NONET and no entity substitution:
 * the document comes from the network.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "azure_sign.h"
#include "azure_xml.h"

void azure_xml_init(void)
{
	static bool done;

	if (!done) {
		xmlInitParser();
		done = true;
	}
}

static xmlDocPtr read_doc(const char *buf, size_t len)
{
	if (len == 0 || len > INT32_MAX)
		return NULL;
	azure_xml_init();
	return xmlReadMemory(buf, (int)len, "azure.xml", NULL,
			     XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

static bool is_elem(xmlNodePtr n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static xmlNodePtr child(xmlNodePtr parent, const char *name)
{
	for (xmlNodePtr n = parent ? parent->children : NULL; n != NULL; n = n->next)
		if (is_elem(n, name))
			return n;
	return NULL;
}

/* malloc'd text content ("" when empty); NULL on ENOMEM. */
static char *text_of(xmlNodePtr n)
{
	xmlChar *c = n ? xmlNodeGetContent(n) : NULL;
	char *out = strdup(c ? (const char *)c : "");

	xmlFree(c);
	return out;
}

static void copy_text(xmlNodePtr n, char *out, size_t size)
{
	char *t = text_of(n);

	snprintf(out, size, "%s", t ? t : "");
	free(t);
}

bool azure_parse_error_body(const char *body, size_t len, char *code, size_t code_size,
			    char *message, size_t message_size)
{
	xmlDocPtr doc = read_doc(body, len);
	xmlNodePtr root;
	bool ok = false;

	if (code_size > 0)
		code[0] = '\0';
	if (message_size > 0)
		message[0] = '\0';
	if (doc == NULL)
		return false;
	root = xmlDocGetRootElement(doc);
	if (root == NULL || !is_elem(root, "Error"))
		goto out;
	copy_text(child(root, "Code"), code, code_size);
	copy_text(child(root, "Message"), message, message_size);
	message[strcspn(message, "\r\n")] = '\0';
	ok = true;
out:
	xmlFreeDoc(doc);
	return ok;
}

void azure_blob_item_free(struct azure_blob_item *item)
{
	free(item->name);
	free(item->content_md5);
	free(item->content_type);
	free(item->etag);
	for (size_t i = 0; i < item->n_meta; i++) {
		free(item->meta_names[i]);
		free(item->meta_values[i]);
	}
	free(item->meta_names);
	free(item->meta_values);
	memset(item, 0, sizeof(*item));
}

const char *azure_blob_item_meta(const struct azure_blob_item *item, const char *name)
{
	for (size_t i = 0; i < item->n_meta; i++)
		if (strcasecmp(item->meta_names[i], name) == 0)
			return item->meta_values[i];
	return NULL;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

/* Names with characters XML cannot carry come back percent-encoded. */
static char *blob_name(xmlNodePtr name_node)
{
	char *name = text_of(name_node);
	xmlChar *encoded = xmlGetProp(name_node, (const xmlChar *)"Encoded");

	if (name != NULL && encoded != NULL && strcasecmp((const char *)encoded, "true") == 0) {
		char *decoded = azure_pct_decode(name, strlen(name));
		free(name);
		name = decoded;
	}
	xmlFree(encoded);
	return name;
}

static int parse_metadata(xmlNodePtr meta, struct azure_blob_item *item)
{
	size_t n = 0;

	for (xmlNodePtr m = meta ? meta->children : NULL; m != NULL; m = m->next)
		if (m->type == XML_ELEMENT_NODE)
			n++;
	if (n == 0)
		return 0;
	item->meta_names = calloc(n, sizeof(char *));
	item->meta_values = calloc(n, sizeof(char *));
	if (item->meta_names == NULL || item->meta_values == NULL)
		return -1;
	for (xmlNodePtr m = meta->children; m != NULL; m = m->next) {
		if (m->type != XML_ELEMENT_NODE)
			continue;
		item->meta_names[item->n_meta] = strdup((const char *)m->name);
		item->meta_values[item->n_meta] = text_of(m);
		item->n_meta++;
		if (item->meta_names[item->n_meta - 1] == NULL ||
		    item->meta_values[item->n_meta - 1] == NULL)
			return -1;
	}
	return 0;
}

static int parse_blob(xmlNodePtr blob, struct azure_blob_item *item, char *err, size_t errlen)
{
	xmlNodePtr name = child(blob, "Name"), props = child(blob, "Properties");
	char *text = NULL;
	int rc = -1;

	item->last_modified = (time_t)-1;
	if (name == NULL) {
		snprintf(err, errlen, "listing has an entry without a Name");
		goto out;
	}
	item->name = blob_name(name);
	if (item->name == NULL || *item->name == '\0') {
		snprintf(err, errlen, "listing has an entry with an empty or bad Name");
		goto out;
	}
	if (is_elem(blob, "BlobPrefix")) {
		item->is_prefix = true;
		rc = 0;
		goto out;
	}
	if (props == NULL) {
		snprintf(err, errlen, "listing entry '%.200s' has no Properties", item->name);
		goto out;
	}
	text = text_of(child(props, "Content-Length"));
	if (text == NULL || parse_u64(text, &item->size) != 0) {
		snprintf(err, errlen, "listing entry '%.200s' has a bad Content-Length",
			 item->name);
		goto out;
	}
	item->content_md5 = text_of(child(props, "Content-MD5"));
	item->content_type = text_of(child(props, "Content-Type"));
	item->etag = text_of(child(props, "Etag"));
	free(text);
	text = text_of(child(props, "Last-Modified"));
	if (item->content_md5 == NULL || item->content_type == NULL || item->etag == NULL ||
	    text == NULL || parse_metadata(child(blob, "Metadata"), item) != 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	item->last_modified = azure_parse_http_date(text);
	rc = 0;
out:
	free(text);
	return rc;
}

int azure_parse_blob_list(const char *xml, size_t len, azure_list_fn fn, void *ctx,
			  char **next_marker, char *err, size_t errlen)
{
	xmlDocPtr doc = read_doc(xml, len);
	xmlNodePtr root, blobs, marker;
	int rc = -1;

	*next_marker = NULL;
	if (doc == NULL) {
		snprintf(err, errlen, "List Blobs answer is not XML");
		goto out;
	}
	root = xmlDocGetRootElement(doc);
	if (root == NULL || !is_elem(root, "EnumerationResults")) {
		snprintf(err, errlen, "List Blobs answer is not an EnumerationResults document");
		goto out;
	}
	blobs = child(root, "Blobs");
	for (xmlNodePtr b = blobs ? blobs->children : NULL; b != NULL; b = b->next) {
		struct azure_blob_item item = { 0 };
		int r;

		if (!is_elem(b, "Blob") && !is_elem(b, "BlobPrefix"))
			continue;
		if (parse_blob(b, &item, err, errlen) != 0) {
			azure_blob_item_free(&item);
			goto out;
		}
		r = fn(ctx, &item);
		azure_blob_item_free(&item);
		if (r != 0) {
			rc = r;
			goto out;
		}
	}
	marker = child(root, "NextMarker");
	if (marker != NULL) {
		char *m = text_of(marker);
		if (m == NULL) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		if (*m == '\0')
			free(m);
		else
			*next_marker = m;
	}
	rc = 0;
out:
	xmlFreeDoc(doc);
	return rc;
}
