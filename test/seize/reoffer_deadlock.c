/* SPDX-License-Identifier: MIT */
/* test/seize/reoffer_deadlock.c - re-offering pages that took remote frees
 * (under the global lock) must not wake the purge thread from under that
 * lock: the thread holds its wake lock while it looks at the heaps. A
 * thread with no heap trims in a loop while another frees remotely into
 * purged sparse pages; no progress for ten seconds is a deadlock. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#define BS 2048
#define PAGES 4000           /* 64 KiB pages: ~62 segments */
static void *keep[PAGES];
static atomic_long progress, trims;
static atomic_int phase;
static void *trimmer(void *a){(void)a; while(atomic_load(&phase)<2){malloc_trim(0); atomic_fetch_add(&trims,1);} return 0;}
static void *freer(void *a){(void)a; /* this thread's heap stays clean: remote frees only */
  while(atomic_load(&phase)<1) usleep(1000);
  for(int i=0;i<PAGES;i++){ free(keep[i]); atomic_fetch_add(&progress,1);
    struct timespec ts={0,300000}; nanosleep(&ts,0);} atomic_store(&phase,2); return 0;}
int main(void){ setvbuf(stdout,0,_IONBF,0); 
  static void *all[PAGES*32]; int n=0;
  pthread_t f,t; pthread_create(&f,0,freer,0);
  for(int i=0;i<PAGES*32;i++){all[n++]=malloc(BS);} 
  int k=0; for(int i=0;i<n;i++){ if(i%32==5) keep[k++]=all[i]; else free(all[i]); }
  malloc_trim(0); sleep(1);      /* pages parked sparse and purged: PURGED */
  pthread_create(&t,0,trimmer,0);/* no heap: its passes set no seize hint */
  atomic_store(&phase,1);
  long last=-1; for(int s=0;s<120;s++){ sleep(10); long p=atomic_load(&progress); 
    if(atomic_load(&phase)==2){printf("done, %ld trims\n",atomic_load(&trims)); return check_summary("seize_reoffer_deadlock");}
    if(!CHECK_MSG(p!=last,"HANG: no progress for 10 s at %ld/%d frees, trims %ld",p,PAGES,atomic_load(&trims))) return check_summary("seize_reoffer_deadlock");
    last=p; }
  return check_summary("seize_reoffer_deadlock");}
