int hamok__log_placeholder_(void);
int hamok__log_placeholder_(void)
{
    return 0;
}
