/* SPDX-License-Identifier: MIT */
/* test/seize/mlock_calloc.c - with the heap locked in memory (mlockall),
 * madvise refuses to drop pages; memory a purge "returned" must still read
 * as zero to calloc. Skipped (77) where mlockall is not allowed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "check.h"
int main(void){
  if(mlockall(MCL_CURRENT|MCL_FUTURE)!=0){perror("mlockall: skipped");return 77;}
  enum{N=2000}; static char*p[N];
  for(int i=0;i<N;i++){p[i]=malloc(64);memset(p[i],0xAB,64);} 
  for(int i=N-1;i>=0;i--)free(p[i]);
  usleep(300000);                       /* let the purge pass "purge" the empty pages */
  int bad=0;
  for(int i=0;i<N;i++){unsigned char*q=calloc(1,64); for(int j=0;j<64;j++) if(q[j]){bad++;break;} }
  printf("calloc blocks with non-zero bytes: %d of %d\n",bad,N);
  CHECK_EQ(bad,0);
  return check_summary("seize_mlock_calloc");}
