/* SPDX-License-Identifier: MIT */
/* test/seize/inner_mark.c - a 6 KiB block whose first OS page is shared
 * with a live block stays on its free list when its inner OS page is
 * purged; once reused and freed again, that OS page must go back at the
 * next malloc_trim(0) too (mincore). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <malloc.h>
#include <unistd.h>
#include <sys/mman.h>

#include "check.h"
#define BS 6144
static int resident(void *p){unsigned char v; uintptr_t a=(uintptr_t)p&~4095UL; mincore((void*)a,4096,&v); return v&1;}
int main(void){
  enum{N=60}; char *p[N];
  for(int i=0;i<N;i++){p[i]=malloc(BS);memset(p[i],7,BS);} 
  uintptr_t pg=0; int idx[10]; 
  for(int i=0;i<N && !pg;i++){ if(((uintptr_t)p[i]&0xffff)==0){ int n=0; for(int j=0;j<N;j++){uintptr_t o=(uintptr_t)p[j]-(uintptr_t)p[i]; if(o<65536 && o%BS==0) idx[o/BS]=j,n++;} if(n==10) pg=(uintptr_t)p[i]; } }
  if(!pg){printf("no suitable page: skipped\n");return 77;}
  char *b1=(char*)pg+BS; void *inner=(char*)pg+8192; /* OS page 2: wholly inside block 1 */
  for(int k=1;k<10;k+=2){free(p[idx[k]]);p[idx[k]]=0;}
  malloc_trim(0);
  printf("after 1st trim: inner OS page of free block 1 resident=%d\n",resident(inner));
  char *got[200]; int ng=0, found=0;
  while(ng<200){got[ng]=malloc(BS); memset(got[ng],9,BS); if(got[ng++]==b1){found=1;break;}}
  printf("block 1 reallocated=%d, inner resident=%d\n",found,resident(inner));
  for(int i=0;i<ng;i++)free(got[i]);
  malloc_trim(0);
  int r=resident(inner);
  printf("after 2nd trim: block 1 free again, inner OS page resident=%d (expected 0)\n",r);
  CHECK_MSG(!found || r==0, "block 1 reused and freed again: its inner OS page is still resident");
  return check_summary("seize_inner_mark");}
