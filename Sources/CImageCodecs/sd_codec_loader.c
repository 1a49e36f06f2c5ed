// The run-time loader of libjpeg.so.62 and libwebp.so.7: dlopen once per process, every symbol looked up
// before the library counts as usable. Nothing here links against either library.
#include "sd_codec_common.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

int sd_codec_load(sd_codec_library *library) {
    pthread_mutex_lock(&load_lock);
    if (!library->handle && !library->error[0]) {
        const char *reason = NULL;
        for (const char *const *name = library->names; *name; name++) {
            library->handle = dlopen(*name, RTLD_NOW | RTLD_LOCAL);
            if (library->handle) break;
            if (!reason) reason = dlerror();
        }
        if (!library->handle) {
            snprintf(library->error, sizeof library->error, "%s", reason ? reason : "cannot be loaded");
        } else {
            library->loaded = 1;
            for (size_t i = 0; i < library->symbol_count; i++) {
                library->slots[i] = dlsym(library->handle, library->symbols[i]);
                if (!library->slots[i]) {
                    snprintf(library->error, sizeof library->error, "%s has no symbol %s", library->names[0],
                             library->symbols[i]);
                    library->loaded = 0;
                    break;
                }
            }
        }
    }
    int loaded = library->loaded;
    pthread_mutex_unlock(&load_lock);
    return loaded;
}

void sd_codec_image_free(sd_codec_image *image) {
    free(image->pixels);
    memset(image, 0, sizeof *image);
}
