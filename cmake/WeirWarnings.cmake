# Compiler flags shared by every target of the project: warnings (as errors
# unless WEIR_WERROR is OFF) and the optional sanitizers.
add_compile_options(-Wall -Wextra -Wshadow -Wstrict-prototypes
                    -Wmissing-prototypes -Wno-unused-parameter)
if(WEIR_WERROR)
  add_compile_options(-Werror)
endif()
if(WEIR_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
