#include "core/release.h"

#include <stdlib.h>

struct release_node {
    release_node_t *next;
    PyObject *obj;
};

void
release_later(interp_t *ip, PyObject *obj)
{
    release_node_t *n = malloc(sizeof(*n));
    if (n == NULL) {
        return; /* out of memory: leaking the reference is the only safe choice */
    }
    n->obj = obj;
    pthread_mutex_lock(&ip->release_lock);
    n->next = ip->release;
    ip->release = n;
    pthread_mutex_unlock(&ip->release_lock);
}

void
release_pending(interp_t *ip)
{
    if (__atomic_load_n(&ip->release, __ATOMIC_RELAXED) == NULL) {
        return;
    }
    pthread_mutex_lock(&ip->release_lock);
    release_node_t *list = ip->release;
    ip->release = NULL;
    pthread_mutex_unlock(&ip->release_lock);
    while (list != NULL) {
        release_node_t *next = list->next;
        Py_DECREF(list->obj);
        free(list);
        list = next;
    }
}
