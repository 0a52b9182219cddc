#include "cbhttp.h"

static const char *const messages[] = {
#define CB_ERR_MSG_(name, value, msg) [value] = msg,
    CB_ERRNO_MAP(CB_ERR_MSG_)
#undef CB_ERR_MSG_
};

/* Each code's value is its place in the list: a code moved or renumbered
 * stops the build (values are part of the ABI). */
enum {
#define CB_ERR_POS_(name, value, msg) CB_POS_##name,
    CB_ERRNO_MAP(CB_ERR_POS_)
#undef CB_ERR_POS_
};
#define CB_ERR_PIN_(name, value, msg)                                                              \
    _Static_assert(CB_POS_##name == (value), "cb_err " #name " was moved or renumbered");
CB_ERRNO_MAP(CB_ERR_PIN_)
#undef CB_ERR_PIN_

CB_EXPORT const char *cb_strerror(cb_err err)
{
    if ((unsigned)err >= (unsigned)CB_ERR_COUNT_)
        return "unknown error";
    return messages[err];
}

CB_EXPORT const char *cbhttp_version(void)
{
#define CBH_STR2_(x) #x
#define CBH_STR_(x) CBH_STR2_(x)
    return CBH_STR_(CBHTTP_VERSION_MAJOR) "." CBH_STR_(CBHTTP_VERSION_MINOR) "." CBH_STR_(
        CBHTTP_VERSION_PATCH);
}
