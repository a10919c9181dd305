# Warnings for amorsize's own targets; not exported, so consumers keep their own flags.
add_library(amorsize_warnings INTERFACE)
target_compile_options(amorsize_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align -Wunused -Woverloaded-virtual
  -Wnull-dereference -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough
  $<$<BOOL:${AMORSIZE_WERROR}>:-Werror>)

if(AMORSIZE_SANITIZE)
  add_compile_options(-fsanitize=${AMORSIZE_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${AMORSIZE_SANITIZE})
endif()
