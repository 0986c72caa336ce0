#include "release.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct node {
    struct node *next;
    PyObject *obj;
} node_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static node_t *pending = NULL;

void
release_later(PyObject *obj)
{
    node_t *n = malloc(sizeof(*n));
    if (n == NULL) {
        return; /* out of memory: leaking the reference is the only safe choice */
    }
    n->obj = obj;
    pthread_mutex_lock(&lock);
    n->next = pending;
    pending = n;
    pthread_mutex_unlock(&lock);
}

void
release_pending(void)
{
    if (__atomic_load_n(&pending, __ATOMIC_RELAXED) == NULL) {
        return;
    }
    pthread_mutex_lock(&lock);
    node_t *list = pending;
    pending = NULL;
    pthread_mutex_unlock(&lock);
    while (list != NULL) {
        node_t *next = list->next;
        Py_DECREF(list->obj);
        free(list);
        list = next;
    }
}
