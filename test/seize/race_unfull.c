/* SPDX-License-Identifier: MIT */
/* test/seize/race_unfull.c - while a pass cleans a heap it took over, its
 * owner may wake at any moment: nothing the cleaning does (draining remote
 * frees brings a full page back to its queue) may hand the owner's fast
 * paths their tables back before the pass lets go. The main thread blocks
 * for a random 0-3 ms after another thread's frees went to its full pages,
 * then allocates hard; a block handed out twice, or one that changes under
 * its owner, fails. Run with EBB_PURGE_DELAY_MS=1. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <malloc.h>

#include "check.h"
#define SZ 1024
#define N 600          /* > 64 KiB / 1024 : several full pages */
#define LOW 20000      /* low-bin blocks to make the clean slow */
static void *volatile handoff[N];
static atomic_int stage;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static void waitfor(int s){pthread_mutex_lock(&mu);while(atomic_load(&stage)!=s)pthread_cond_wait(&cv,&mu);pthread_mutex_unlock(&mu);}
static void setst(int s){pthread_mutex_lock(&mu);atomic_store(&stage,s);pthread_cond_broadcast(&cv);pthread_mutex_unlock(&mu);}
static void *remote(void *a){(void)a;for(int it=0;;it++){waitfor(2*it+1);for(int i=0;i<N;i+=2){free(handoff[i]);}setst(2*it+2);}return 0;}
static void *trimmer(void *a){(void)a;for(;;){malloc_trim(0);}return 0;}
static unsigned long long rng=88172645463325252ULL;static unsigned long long xr(void){rng^=rng<<13;rng^=rng>>7;rng^=rng<<17;return rng;}
int main(int argc,char**argv){
  int iters=argc>1?atoi(argv[1]):1000;
  pthread_t r,t; pthread_create(&r,0,remote,0); if(getenv("TRIM"))pthread_create(&t,0,trimmer,0);
  static char *low[LOW]; static char *mine[N*4]; int nm=0;
  for(int it=0;it<iters;it++){
    for(int i=0;i<LOW;i++){low[i]=malloc(16+16*(i%8)); memset(low[i],1,16);} 
    for(int i=0;i<LOW;i+=2){free(low[i]);low[i]=0;}
    for(int i=0;i<N;i++){char*p=malloc(SZ);memset(p,(int)(uintptr_t)p,SZ);handoff[i]=p;}
    setst(2*it+1); waitfor(2*it+2);           /* remote frees -> delayed_free */
    struct timespec ts={0,(long)(xr()%3000)*1000}; nanosleep(&ts,0); /* blocked: seize */
    /* wake: hammer the size class on fast paths */
    nm=0;
    for(int k=0;k<N*2;k++){char*p=malloc(SZ); 
      for(int j=0;j<nm;j++) REQUIRE_MSG(mine[j]!=p,"DOUBLE ALLOC %p it %d",(void*)p,it);
      for(int j=1;j<N;j+=2) REQUIRE_MSG(handoff[j]!=p,"ALLOC OF LIVE %p it %d",(void*)p,it);
      memset(p,0x5a,SZ); mine[nm++]=p; if(nm>=N*4)break; if(k%3==0){free(mine[--nm]);}}
    for(int j=0;j<nm;j++){for(int q=0;q<SZ;q++) REQUIRE_MSG(((unsigned char*)mine[j])[q]==0x5a,"CORRUPT %p+%d it %d",(void*)mine[j],q,it); }
    for(int j=1;j<N;j+=2){unsigned char*p=handoff[j];for(int q=0;q<SZ;q++) REQUIRE_MSG(p[q]==(unsigned char)(uintptr_t)p,"CORRUPT live %p+%d it %d",(void*)p,q,it);}
    for(int j=0;j<nm;j++)free(mine[j]); for(int j=1;j<N;j+=2)free(handoff[j]);
    for(int i=1;i<LOW;i+=2)free(low[i]);
  }
  printf("ok %d iters\n",iters); return 0;}
