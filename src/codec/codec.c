/* placeholder until the codec lands */
#include "codec/codec.h"
